#!/usr/bin/env bash
# Regenerates every committed result, model, figure, GIF and the tables of docs/results.md and
# docs/pixels.md from the committed code (about two hours on 2 cores: the stub recipe's
# comparison sweep about 30 minutes, the pixel results about 90 with the two renderers side by side).
set -euo pipefail
cd "$(dirname "$0")"
M=relational_nem_bouncing_balls.py
python3 $M --recipe simulator --save-model models/simulator_seed0.npz                  # run_simulator.json
python3 $M --recipe simulator --masses --save-model models/simulator_masses_seed0.npz  # run_simulator_masses.json
python3 $M --recipe simulator --seeds 0-9                                              # sweep_simulator.json
python3 $M --recipe simulator --masses --seeds 0-9                                     # sweep_simulator_masses.json
python3 $M --seed 0 --save-model models/stub_seed0.npz                                 # run.json
python3 $M --seed 0 --agg attention --out run_attention.json --save-model models/stub_attention_seed0.npz
python3 $M --seeds 0-9 --agg mean,sum,attention --curriculum 2,3,4,5,6 --eval-k 3,4,5,6,7,8   # sweep.json
python3 visualize_relational_nem_bouncing_balls.py                                     # viz/ (run.json)
python3 visualize_relational_nem_bouncing_balls.py --run sweep.json
python3 visualize_relational_nem_bouncing_balls.py --run run_attention.json --out viz/attention
for r in simulator simulator_masses; do
  python3 visualize_relational_nem_bouncing_balls.py --run run_$r.json --out viz/$r
  python3 visualize_relational_nem_bouncing_balls.py --run sweep_$r.json --out viz/$r
done
python3 make_relational_nem_bouncing_balls_gif.py --run run_simulator.json
python3 make_relational_nem_bouncing_balls_gif.py --run run_simulator_masses.json --out relational_nem_bouncing_balls_masses.gif
python3 make_relational_nem_bouncing_balls_gif.py --run run.json --out relational_nem_bouncing_balls_stub.gif
python3 make_relational_nem_bouncing_balls_gif.py --run run_attention.json --out relational_nem_bouncing_balls_attention.gif
# pixels (relational_nem_pixels.py): the known and the learned renderer; a seed-0 file
# (with the sample sequence the figures draw) and ten seeds for each setting
bash regenerate_pixels.sh known &                      # one core each: about 25 and 90 minutes
known=$!
bash regenerate_pixels.sh learned
wait $known
python3 visualize_relational_nem_bouncing_balls.py --pixels pixels.json --out viz/pixels   # Figure 2 analogue
python3 visualize_relational_nem_bouncing_balls.py --pixels pixels_curtain.json --out viz/pixels   # Figure 5 analogue
python3 visualize_relational_nem_bouncing_balls.py --pixels pixels_learned.json --out viz/pixels
python3 make_relational_nem_bouncing_balls_gif.py --pixels pixels_curtain.json --out relational_nem_pixels.gif --fps 4
python3 benchmarks/kernel_check.py     # the same runs under a second BLAS kernel: which numbers are exact (10 min)
python3 docs/tables.py --write         # the tables of docs/results.md, docs/pixels.md, docs/reproducibility.md
