"""robolearn: robot learning in JAX, from recorded episodes to a safe robot.

Importing robolearn needs no GPU, no display and no ROS.
"""

__version__ = "0.1.0"
