"""The array spec every part shares: the 7-D action and the 7-D proprioception.

Action (BridgeData convention), normalized to [-1, 1] per dimension for all learning:
delta x, y, z; delta roll, pitch, yaw; gripper (+1 open, -1 closed). Proprio: end-effector
x, y, z (m), roll, pitch, yaw (rad), gripper opening in [0, 1].
"""

ACTION_DIM = 7
ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
PROPRIO_DIM = 7
PROPRIO_NAMES = ("x", "y", "z", "roll", "pitch", "yaw", "gripper_opening")
