"""The HTTP layer: the only code that talks to the API and file hosts (retries, rates, limits)."""
