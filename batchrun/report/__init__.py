"""Reading a run: its status, the HTML report, and exports as datasets."""
