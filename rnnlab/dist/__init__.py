"""Beyond one machine: data-parallel training on MPI (``mpi``) and sweeps as Ray
Tune trials (``tune``). Both need the ``dist`` extra: ``pip install "rnnlab[dist]"``."""
