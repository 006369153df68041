"""``python -m napari_unet`` runs the command line."""

import sys

from .cli import main

sys.exit(main())
