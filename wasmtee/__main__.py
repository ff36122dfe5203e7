import sys

from wasmtee.cli import main

sys.exit(main())
