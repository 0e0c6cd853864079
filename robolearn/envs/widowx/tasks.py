"""The WidowX task list: names to task classes, registered with robolearn.envs.registry.

Tasks are WidowXTask subclasses (base.py) in drawer.py, push.py and contact.py; each returns its
scripted expert (experts.py, or with the task in contact.py). All run at 5 Hz for MAX_STEPS steps.
"""

from __future__ import annotations

from robolearn.core import widowx_control as control
from robolearn.envs.base import TaskConfig, TaskInfo
from robolearn.envs.widowx.base import WidowXTask
from robolearn.envs.widowx.contact import PressTask
from robolearn.envs.widowx.drawer import DrawerCloseTask, DrawerTask
from robolearn.envs.widowx.push import PushTask

_TASKS: dict[str, tuple[str, type[WidowXTask]]] = {
    "drawer": ("open the drawer", DrawerTask),
    "drawer-close": ("close the drawer", DrawerCloseTask),
    "push": ("push the block to the target", PushTask),
    "press": ("press the button", PressTask),
}
MAX_STEPS = 50


def task_infos() -> list[TaskInfo]:
    """The TaskInfo of every WidowX task."""
    return [
        TaskInfo(name, "widowx", instruction, control.CONTROL_HZ, MAX_STEPS, control.ACTION_MEANING)
        for name, (instruction, _) in _TASKS.items()
    ]


def make_task(info: TaskInfo, config: TaskConfig) -> WidowXTask:
    """Registry factory: build the WidowX task named by `info`."""
    return _TASKS[info.name][1](info, config)


def register_all(register) -> None:
    """Register every WidowX task with the task registry."""
    for info in task_infos():
        register(info, f"{__name__}:make_task")
