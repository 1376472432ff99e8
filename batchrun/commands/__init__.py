"""One module per command, each with `main(args: argparse.Namespace) -> int`; see batchrun/cli.py."""
