"""WidowX 250 6DOF MuJoCo tasks: the arm model (arm.py), scenes, scripted experts and tasks."""
