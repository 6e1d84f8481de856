"""ssv2-stress: find the DataLoader settings a machine can sustain for SSv2 video."""
from __future__ import annotations
