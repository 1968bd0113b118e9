#!/usr/bin/env bash
# Regenerates every committed result, model, figure, GIF and the tables of docs/ from the committed
# code: about two hours on 2 cores (the stub recipe's comparison sweep about 30 minutes; the pixel
# results about 90, the known and the learned renderer side by side, one core each).
#   bash regenerate.sh                  everything, in this order
#   bash regenerate.sh states           the state experiments (results/, run.json, models/)
#   bash regenerate.sh pixels_known     the pixel results with the known renderer (about 25 min, one core)
#   bash regenerate.sh pixels_learned   the pixel results with the learned renderer (about 90 min, one core)
#   bash regenerate.sh network          the paper's network: 5 seeds of 5 models, the curtain and masses
#                                       (29 trainings of 1-8 min, two at a time: about 65 min on 2 cores)
#   bash regenerate.sh network_retest   the saved networks measured again (after a change of a measure: minutes)
#   bash regenerate.sh network_long     the long training: 5 seeds of 5 models and 3 of the curtain (about 8 hours
#                                       on 2 cores; skips what is done, so it can be run in parts)
#   bash regenerate.sh interactions     the simulator learned from frames: seed 0, ten seeds, equal masses and
#                                       masses, and the pixel pipeline with those models (about 50 min on 2 cores)
#   bash regenerate.sh figures          figures, GIFs, the kernel check and the tables, from the results
set -euo pipefail
cd "$(dirname "$0")"
M=relational_nem_bouncing_balls.py
P=relational_nem_pixels.py
V=visualize_relational_nem_bouncing_balls.py
G=make_relational_nem_bouncing_balls_gif.py
N=relational_nem_network.py

states() {
  python3 $M --recipe simulator --save-model models/simulator_seed0.npz --out results/run_simulator.json
  python3 $M --recipe simulator --masses --save-model models/simulator_masses_seed0.npz --out results/run_simulator_masses.json
  python3 $M --recipe simulator --seeds 0-9 --out results/sweep_simulator.json --seed-dir results/sweep_runs_simulator
  python3 $M --recipe simulator --masses --seeds 0-9 --out results/sweep_simulator_masses.json --seed-dir results/sweep_runs_simulator_masses
  python3 $M --seed 0 --save-model models/stub_seed0.npz --out run.json                  # the design card's run
  python3 $M --seed 0 --agg attention --out results/run_attention.json --save-model models/stub_attention_seed0.npz
  python3 $M --seeds 0-9 --agg mean,sum,attention --curriculum 2,3,4,5,6 --eval-k 3,4,5,6,7,8 --out results/sweep.json \
    --seed-dir results/sweep_runs
}

pixels_known() {    # a seed-0 file (with the sample sequence the figures draw) and ten seeds for each setting
  python3 $P --out results/pixels.json                                              # 4 balls, K = 5
  python3 $P --seeds 0-9 --out results/pixels_seeds.json
  python3 $P --n-balls 6-8 --components 8 --out results/pixels_k6-8.json                   # extrapolation, K = 8
  python3 $P --n-balls 6-8 --components 8 --seeds 0-9 --out results/pixels_k6-8_seeds.json
  python3 $P --n-balls 3 --curtain 0.25 --out results/pixels_curtain.json                  # the curtain, 3 balls as the paper
  python3 $P --n-balls 3 --curtain 0.25 --seeds 0-9 --out results/pixels_curtain_seeds.json
  python3 $P --n-balls 4 --curtain 0.25 --out results/pixels_curtain4.json                 # 4 balls behind the curtain
  python3 $P --n-balls 4 --curtain 0.25 --seeds 0-9 --out results/pixels_curtain4_seeds.json
  python3 $P --masses --out results/pixels_masses.json                                     # two ball types
  python3 $P --masses --seeds 0-9 --out results/pixels_masses_seeds.json
}

pixels_learned() {
  python3 $P --renderer learned --out results/pixels_learned.json                          # trained on 4 balls
  python3 $P --renderer learned --n-balls 6-8 --components 8 --out results/pixels_learned_k6-8.json
  python3 $P --renderer learned --seeds 0-9 --out results/pixels_learned_seeds.json
  python3 $P --renderer learned --n-balls 6-8 --components 8 --seeds 0-9 --out results/pixels_learned_k6-8_seeds.json
}

network_jobs() {    # one line per training: its arguments (seed 0 first: it keeps the sample the figures draw)
  local seed name args
  for seed in 0 1 2 3 4; do
    for name in r_nem rnn_em r_nem_sum rnn r_nem_k8 r_nem_curtain rnn_em_curtain r_nem_masses rnn_em_masses; do
      case $name in
        r_nem|rnn_em|r_nem_sum) args="--kind $name" ;;
        rnn) args="--kind rnn_em --components 1" ;;                                # the paper's RNN: K = 1
        r_nem_k8) args="--kind r_nem --components 8" ;;
        *_curtain) args="--kind ${name%_curtain} --n-balls 3 --curtain 0.25" ;;   # 3 balls, as the paper
        *_masses) args="--kind ${name%_masses} --masses" ;;
      esac
      case $name in *_curtain|*_masses) [ $seed = 0 ] || continue ;; esac        # one seed each: qualitative
      [ $seed = 0 ] && args="$args --sample"
      echo "$args --seed $seed --save-model models/network/${name}_seed$seed.npz --out results/network/${name}_seed$seed.json"
    done
  done
}

network() {
  mkdir -p results/network models/network
  network_jobs | xargs -P 2 -L 1 python3 $N                                        # two trainings at a time
  python3 $N --summarise results/network --out results/network_summary.json
}

LONG="--t-frames 30 --frame-steps 2 --steps 10000 --eval-every 500 --lr-drop-at 6000 --own-input 0.5 --own-input-from 6000 --select-from 6500 --patience 4"
network_long_jobs() {   # the long training (docs/network.md): seed 0 of every model first, so that each seed is whole
  local seed name args
  for seed in 0 1 2 3 4; do
    for name in r_nem rnn_em r_nem_sum rnn r_nem_k8 r_nem_curtain rnn_em_curtain; do
      case $name in
        r_nem|rnn_em|r_nem_sum) args="--kind $name" ;;
        rnn) args="--kind rnn_em --components 1" ;;                                # the paper's RNN: K = 1
        r_nem_k8) args="--kind r_nem --components 8" ;;
        *_curtain) args="--kind ${name%_curtain} --n-balls 3 --curtain 0.25" ;;   # 3 balls, as the paper
      esac
      case $name in *_curtain) [ $seed -le 2 ] || continue ;; esac              # three seeds of the curtain
      case $name in *_curtain) args="$args --t-frames 40" ;; esac               # long enough to cross the band
      [ $seed = 0 ] && args="$args --sample"
      out=results/network_long/${name}_seed$seed.json
      [ -e "$out" ] && continue                                                  # done in an earlier session
      echo "$LONG $args --seed $seed --save-model models/network_long/${name}_seed$seed.npz --out $out"
    done
  done
}

network_long() {      # about 25 trainings of 10-40 min, two at a time; resumes where it stopped
  mkdir -p results/network_long models/network_long
  network_long_jobs | xargs -P 2 -L 1 python3 $N
  python3 $N --summarise results/network_long --out results/network_long_summary.json
  # the earlier rule (select from step 6 000 on, one check before the curriculum has trained anything) for the
  # runs whose pick it changes (docs/network.md: what the selection decides); the others pick the same under both
  mkdir -p results/network_long_select6000 models/network_long_select6000
  for job in "r_nem 2" "rnn_em 0" "rnn_em 1" "rnn_em 2" "rnn_em 3" "rnn_em 4" "rnn 0"; do
    set -- $job
    out=results/network_long_select6000/$1_seed$2.json
    [ -e "$out" ] && continue
    args="--kind $1"; [ $1 = rnn ] && args="--kind rnn_em --components 1"; [ $2 = 0 ] && args="$args --sample"
    echo "${LONG/--select-from 6500/--select-from 6000} $args --seed $2 --save-model models/network_long_select6000/$1_seed$2.npz --out $out"
  done | xargs -P 2 -L 1 python3 $N
  python3 $N --summarise results/network_long_select6000 --out results/network_long_select6000_summary.json
}

interactions() {    # interactions learned from frames (about 50 min on 2 cores): seed 0 with its models, ten seeds,
                    # then the pixel pipeline with the frame-trained models (relational simulator only)
  local I=relational_nem_interactions.py
  python3 $I --save-model models/interactions_seed0.npz --out results/interactions_seed0.json
  python3 $I --masses --save-model models/interactions_masses_seed0.npz --out results/interactions_masses_seed0.json
  python3 $I --seeds 0-9 --out results/interactions.json --seed-dir results/interactions_runs
  python3 $I --masses --seeds 0-9 --out results/interactions_masses.json --seed-dir results/interactions_runs_masses
  local F="--dynamics simulator.relational --models models/interactions_seed0.npz"
  python3 $P $F --out results/pixels_frames.json
  python3 $P $F --seeds 0-9 --out results/pixels_frames_seeds.json
  python3 $P $F --n-balls 3 --curtain 0.25 --out results/pixels_curtain_frames.json
  python3 $P $F --n-balls 3 --curtain 0.25 --seeds 0-9 --out results/pixels_curtain_frames_seeds.json
  F="--masses --dynamics simulator.relational --models models/interactions_masses_seed0.npz"
  python3 $P $F --out results/pixels_masses_frames.json
  python3 $P $F --seeds 0-9 --out results/pixels_masses_frames_seeds.json
}

figures() {
  python3 $V --run run.json --out viz
  python3 $V --run results/sweep.json --out viz
  python3 $V --run results/run_attention.json --out viz/attention
  for r in simulator simulator_masses; do
    python3 $V --run results/run_$r.json --out viz/$r
    python3 $V --run results/sweep_$r.json --out viz/$r
    python3 $G --run results/run_$r.json --out viz/$r/rollout.gif
  done
  python3 $G --run run.json --out relational_nem_bouncing_balls.gif                  # the headline GIF
  python3 $G --run results/run_attention.json --out viz/attention/rollout.gif
  python3 $V --pixels results/pixels.json --out viz/pixels                          # Figure 2 analogue
  python3 $V --pixels results/pixels_curtain.json --out viz/pixels                  # Figure 5 analogue
  python3 $V --pixels results/pixels_learned.json --out viz/pixels
  python3 $G --pixels results/pixels_curtain.json --out viz/pixels/curtain.gif --fps 4
  python3 $V --network results/network_summary.json --out viz/network              # Figures 3 and 4 (right)
  for n in r_nem rnn_em r_nem_k8 r_nem_curtain rnn_em_curtain r_nem_masses; do        # Figures 2, 4 (left), 5
    python3 $V --network results/network/${n}_seed0.json --out viz/network
  done
  if [ -e results/network_long_summary.json ]; then                                   # the long training
    python3 $V --network results/network_long_summary.json --out viz/network_long
    for f in results/network_long/*_seed0.json; do python3 $V --network "$f" --out viz/network_long; done
  fi
  python3 $G --network results/network/r_nem_seed0.json --out viz/network/r_nem.gif --fps 4
  python3 $G --network results/network/r_nem_curtain_seed0.json --out viz/network/r_nem_curtain.gif --fps 4
  for r in interactions interactions_masses; do                                      # interactions learned from frames
    python3 $V --interactions results/$r.json --out viz/interactions
    python3 $V --interactions results/${r}_seed0.json --out viz/interactions
  done
  python3 benchmarks/kernel_check.py     # the same runs under a second BLAS kernel: which numbers are exact (10 min)
  python3 docs/tables.py --write         # the tables of README.md and docs/
}

case "${1:-all}" in
  all)
    states
    bash "$0" pixels_known &                                   # one core each
    known=$!
    pixels_learned
    wait $known
    network
    interactions
    figures ;;
  states|pixels_known|pixels_learned|network|network_long|interactions|figures) "$1" ;;
  network_retest)     # measure the saved networks again with this code (minutes): after a change of a measure
    for m in models/network/*.npz; do
      name=$(basename "$m" .npz)
      case $name in *_seed0) sample=--sample ;; *) sample= ;; esac
      python3 $N --retest "$m" $sample --out "results/network/$name.json"
    done
    python3 $N --summarise results/network --out results/network_summary.json ;;
  *) echo "usage: bash regenerate.sh [all|states|pixels_known|pixels_learned|network|network_retest|interactions|figures]" >&2; exit 2 ;;
esac
