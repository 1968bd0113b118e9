"""The machinery and building blocks the project's scripts share (pure numpy).

    layers       flat parameter vector with named views, affine forward/backward pairs, ReLU MLP
    optim        Adam on a flat vector, gradient-norm clipping
    gradcheck    centred finite differences in float64, relative error (the tests' reference)
    frames       binary frames of balls, the curtain
    measures     adjusted Rand index, binary cross-entropy
    cli          the one-line error (ConfigError, OneLineParser), the CLI from a config dataclass, lists of seeds
    entry        the one main() wrapper: bad input, failed runs, signals and exit codes
    files        output checks before any work, atomic writes, strict JSON, a folder's lock
    model_files  trained parameters in an .npz with JSON metadata (no pickle)
    blas         the BLAS library and kernel, one BLAS thread for a call
    environment  what a result records of the machine and the code (sha256)
    provenance   what a figure or GIF was drawn from (the sha256 of its JSON, inside the picture)
    processes    worker processes that never hang and leave no orphans
    sweeps       the measures a sweep summarises, statistics over seeds, --aggregate
    result_files reading and checking result JSON for the figure and GIF scripts
    pictures     anti-aliased disks and the colours of the models, for figures and GIFs
    frame_figures    the figures of the pipelines on frames (pixels, the network, interactions)
    names        the display names of the network's models, one table for the figures and the docs
    balls        the paper's two ball types: radii and masses; the simulator's wall pass
    simulator    the bouncing-balls simulator (elastic collisions, two ball types) and its data sets
    state_config the state models' experiment config (the design card's CLI is built from it)
    state_models the non-relational and relational dynamics models on ball states, their files
    state_training   BPTT training, the two models in two workers, rollouts, a run's data
    state_evaluation closed-loop errors by collision event, baselines, long horizon, attention
    mixture      the E-step of a spatial mixture of Bernoulli components
    tracker      the E-step tracker on frames: components, renderer, M-step, discovery, dynamics
    simulator_model  the simulator recipe's model (free flight plus learned, gated impulses)
    rollout_measures errors, horizon, energy and distribution distances of a rollout
    scenes       frames of balls with everything true about them (states, collisions, labels, the curtain)
    dynamics_measures  whether a network learned the motion: motion fraction, positions, Brier, attention
    motion_references  the motion fraction of physics that knows two frames' true centres (its references)
    network      the paper's network (RNN-EM, R-NEM): encoder, Upsilon, recurrence, decoder, unrolled EM
    tracks       tracks of the E-step tracker turned into training states: velocities, usable windows
"""
