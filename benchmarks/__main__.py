"""`python -m benchmarks` (what `make bench` runs): the scale benchmark, benchmarks/scale.py."""

from benchmarks.scale import main

raise SystemExit(main())
