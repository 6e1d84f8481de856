"""``python -m ssv2_fixtures.synth OUT …``: the synthetic-set CLI (its code is :mod:`ssv2_fixtures.data.synth`)."""

from __future__ import annotations

if __name__ == "__main__":
    from ssv2_fixtures.data.synth import main

    raise SystemExit(main())
