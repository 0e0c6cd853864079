"""The robot path: a trained policy driving the WidowX 250 6DOF safely, over ROS 2 or in sim.

    policy (5 Hz) -> bridge: action -> EE target -> IK -> joint target -> 100 Hz ramp
                  -> passivity filter (energy tank) -> shield (limits, watchdog, effort) -> arm

Modules (kinematics, limits and the action mapping live in robolearn.core.widowx and
robolearn.core.widowx_control, shared with the simulator):

- `passivity`: the energy-tank passivity filter over a virtual spring-damper port at the joints.
- `shield`: joint, step/velocity and workspace limits, NaN/inf rejection, the watchdog on stale
  joint states and images, the effort safe stop, and a record of every intervention.
- `bridge`: the bridge core with no ROS in it (Bridge), and the names users import
  (BridgeConfig, JointCommand, ObservationError, load_policy).
- `modes`: the bridge's mode machine (idle, running, hold, closed, and why) and the policy
  schedule with its watchdog.
- `readings`: the check that refuses implausible joint readings (out of range, too fast, jumps).
- `bridge_types`: BridgeConfig, the JointCommand out, the measured joints in and their checks.
- `ramp`: the policy action checked and mapped to an end-effector target, and the joint setpoint
  ramp at the control rate.
- `safety_chain`: reading check; shield limits -> passivity filter -> shield check, and the hold
  position; shared by the ROS node and the simulated loop (both drive a Bridge).
- `recording`: deployment episodes in memory and the hand-off of finished ones to an episode
  writer on their own thread. hardware never imports robolearn.data: the episode store's writer
  (robolearn.data.deployment) is handed in by robolearn.runs.deploy.
- `policy_loader`: a checkpoint or shipped part as a bridge policy (load_policy).
- `sim_arm`: the MuJoCo WidowX scene behind a joint-position driver interface (SimArm), and the
  simulated closed loop (`python -m robolearn.hardware.sim_arm`; recording through
  `python -m robolearn.runs.deploy sim`).
- `ros2_node`, `ros2_sim_driver`, `ros2_msgs`, `ros2_config`: the rclpy bridge node (run with
  recording by `python -m robolearn.runs.deploy`), the simulated driver node, message conversion
  and the node's parameters; no other module imports rclpy. The harness that runs and watches
  the nodes for tests and benchmarks is not part of the package: bench/ros2_probe.py.

Importing `hardware` (or bridge, passivity, shield, recording) imports neither rclpy nor jax; a
policy checkpoint loads jax when `bridge.load_policy` is called.
"""
