"""What the commands share and nothing below them uses: what a person sees, and what they chose."""
