"""robolearn_ros: the ROS 2 package around robolearn's bridge node and simulated WidowX driver."""
