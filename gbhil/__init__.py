"""gbhil: hardware-in-the-loop hub and simulator for GB smart metering."""

__version__ = "0.1.0"
