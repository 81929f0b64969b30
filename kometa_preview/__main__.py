"""`python -m kometa_preview` is the same as the `kometa-preview` command."""
from .cli import main

main()
