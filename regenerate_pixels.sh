#!/usr/bin/env bash
# The pixel results (relational_nem_pixels.py): `known` (about 25 minutes on one core) or
# `learned` (about 90 minutes on one core); regenerate.sh runs both, and the two can run side by side.
set -euo pipefail
cd "$(dirname "$0")"
P=relational_nem_pixels.py
case "${1:-}" in
  known)
    python3 $P                                                                  # pixels.json: 4 balls, K = 5
    python3 $P --seeds 0-9 --out pixels_seeds.json
    python3 $P --k-balls 6-8 --components 8 --out pixels_k6-8.json                # extrapolation, K = 8
    python3 $P --k-balls 6-8 --components 8 --seeds 0-9 --out pixels_k6-8_seeds.json
    python3 $P --k-balls 3 --curtain 0.25 --out pixels_curtain.json               # the curtain, 3 balls as the paper
    python3 $P --k-balls 3 --curtain 0.25 --seeds 0-9 --out pixels_curtain_seeds.json
    python3 $P --k-balls 4 --curtain 0.25 --out pixels_curtain4.json              # 4 balls behind the curtain
    python3 $P --k-balls 4 --curtain 0.25 --seeds 0-9 --out pixels_curtain4_seeds.json
    python3 $P --masses --out pixels_masses.json                                  # two ball types
    python3 $P --masses --seeds 0-9 --out pixels_masses_seeds.json ;;
  learned)
    python3 $P --renderer learned --out pixels_learned.json                       # trained on 4 balls
    python3 $P --renderer learned --k-balls 6-8 --components 8 --out pixels_learned_k6-8.json
    python3 $P --renderer learned --seeds 0-9 --out pixels_learned_seeds.json
    python3 $P --renderer learned --k-balls 6-8 --components 8 --seeds 0-9 --out pixels_learned_k6-8_seeds.json ;;
  *) echo "usage: bash regenerate_pixels.sh known|learned" >&2; exit 2 ;;
esac
