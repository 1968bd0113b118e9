"""Display names of the network experiments (relational_nem_network.py), one table for the
figures, the GIFs and the generated tables: result name (<name>_seed<N>.json) -> what a reader sees.
The first five are the paper's models in its order, worst to best."""

NETWORK_NAMES = {"rnn": "RNN (K = 1)", "rnn_em": "RNN-EM", "r_nem_sum": "R-NEM without attention", "r_nem": "R-NEM",
                 "r_nem_k8": "R-NEM trained with K = 8", "r_nem_curtain": "R-NEM, curtain (3 balls)",
                 "rnn_em_curtain": "RNN-EM, curtain (3 balls)", "r_nem_masses": "R-NEM, two ball types",
                 "rnn_em_masses": "RNN-EM, two ball types"}
MAIN_NETWORKS = ("rnn", "rnn_em", "r_nem_sum", "r_nem", "r_nem_k8")      # trained on 4 balls, no curtain, equal masses
HEADLINE_PROTOCOL = "original"   # the simulation protocol the figures and tables lead with (docs/network.md says why)
MOTION_REFERENCE_NAMES = {"constant_velocity": "constant velocity from two frames",          # rnem.motion_references
                          "walls": "free flight with the walls, from two frames",
                          "simulator": "the simulator (walls and collisions), from two frames",
                          "walls_true_velocity": "free flight with the walls, from the true velocity"}
