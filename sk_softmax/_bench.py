"""Benchmark suite behind ``python -m sk_softmax bench``."""


def add_arguments(parser):
    """Register the bench options on an argparse (sub)parser."""
    parser.add_argument("--quick", action="store_true", help="small data, for CI")
    parser.add_argument("--output", default=None, help="write results as JSON here")


def run(args):
    """Run the benchmark described by the parsed ``args``; return an exit code."""
    raise SystemExit("the benchmark suite is not written yet")
