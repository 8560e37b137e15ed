"""HIL suites: runnable unchanged against any rig (``pytest hil_tests --rig FILE``).

The gbhil pytest plugin (fixtures ``rig``, ``dcc``, ``clock``, ``han``, ``chf``, ``gpf``,
``esme``, ``gsme``, ``ppmid``, ``hht``, ``psu``; markers ``usecase``, ``srv``, ``needs``)
is loaded through its ``pytest11`` entry point, so nothing is needed here.
"""
