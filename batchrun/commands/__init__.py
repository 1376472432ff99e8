"""One module per command, each with `main(args: argparse.Namespace) -> int`.

See batchrun/cli.py, which parses the command line and maps errors to exit codes.
"""
