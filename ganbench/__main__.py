"""`python -m ganbench`: the same command line as `ganbench`."""

from ganbench.cli import main

main()
