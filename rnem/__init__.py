"""The machinery and building blocks the project's scripts share (pure numpy).

    layers       flat parameter vector with named views, affine forward/backward pairs, ReLU MLP
    optim        Adam on a flat vector, gradient-norm clipping
    gradcheck    centred finite differences in float64, relative error (the tests' reference)
    frames       binary frames of balls, the curtain
    measures     adjusted Rand index, binary cross-entropy
    cli          the one-line error (ConfigError, OneLineParser), lists of integers and seeds
    files        output checks before any work, atomic writes, strict JSON, a folder's lock
    model_files  trained parameters in an .npz with JSON metadata (no pickle)
    blas         the BLAS library and kernel, one BLAS thread for a call
    environment  what a result records of the machine and the code (sha256)
    processes    worker processes that never hang and leave no orphans
    sweeps       the measures a sweep summarises, statistics over seeds, --aggregate
    result_files reading and checking result JSON for the figure and GIF scripts
    pictures     anti-aliased disks and the colours of the models, for figures and GIFs
    balls        the paper's two ball types: radii and masses; the simulator's wall pass
    simulator_model  the simulator recipe's model (free flight plus learned, gated impulses)
    rollout_measures errors, horizon, energy and distribution distances of a rollout
    scenes       frames of balls with everything true about them (states, collisions, labels, the curtain)
    network      the paper's network (RNN-EM, R-NEM): encoder, Upsilon, recurrence, decoder, unrolled EM
    tracks       tracks of the E-step tracker turned into training states: velocities, usable windows
"""
