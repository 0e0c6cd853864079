"""WidowX 250 6DOF MuJoCo tasks. Imports run one way, top to bottom:

tasks            the task list: names -> classes, registered with robolearn.envs.registry
drawer, push, contact (press)   the tasks: scene, placement, success, their expert
base             WidowXTask: arm control, observations, visual randomization
experts          scripted experts, reading a task through the Protocols they declare
visuals, scenes, arm   MJCF of the scenes and of the arm
"""
