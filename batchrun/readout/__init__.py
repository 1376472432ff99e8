"""What a run folder holds, read back: `status` (counts against the plan, the CSV), `export` (a
dataset as JSON Lines, CSV or a folder `datasets` loads) and `verify` (a folder or dataset
against its record). The HTML page that shows the same results is `batchrun.report`."""
