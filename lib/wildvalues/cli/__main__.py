"""`python -m wildvalues.cli`."""

import sys

from wildvalues.cli.parser import console_entry

sys.exit(console_entry())
