"""One module per command, each with `main(args) -> int`.

`args` is the command's frozen record from `frontend/options/<name>.py`; no command sees argparse.

See batchrun/cli.py, which parses the command line and maps errors to exit codes.
"""
