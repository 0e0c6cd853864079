"""The robot path: a trained policy driving the WidowX 250 6DOF safely, over ROS 2 or in sim.

    policy (5 Hz) -> bridge: action -> EE target -> IK -> joint target -> 100 Hz ramp
                  -> passivity filter (energy tank) -> shield (limits, watchdog, effort) -> arm

Modules (kinematics, limits and the action mapping live in robolearn.core.widowx and
robolearn.core.widowx_control, shared with the simulator):

- `passivity`: the energy-tank passivity filter over a virtual spring-damper port at the joints.
- `shield`: joint, step/velocity and workspace limits, NaN/inf rejection, the watchdog on stale
  joint states and images, the effort safe stop, and a record of every intervention.
- `bridge`: the bridge core with no ROS in it (Bridge, BridgeConfig, JointCommand, load_policy).
- `recording`: deployment episodes written into the episode store (robolearn.data).
- `sim_arm`: the MuJoCo WidowX scene behind a joint-position driver interface (SimArm), and the
  simulated closed loop (`python -m robolearn.hardware.sim_arm`).
- `ros2_node`, `ros2_sim_driver`, `ros2_msgs`: the rclpy bridge node, the simulated driver node
  and message conversion; the only modules that import rclpy.

Importing `hardware` (or bridge, passivity, shield, recording) imports neither rclpy nor jax; a
policy checkpoint loads jax when `bridge.load_policy` is called.
"""
