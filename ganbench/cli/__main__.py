"""`python -m ganbench.cli …` = `ganbench …`."""

from ganbench.cli import main

main()
