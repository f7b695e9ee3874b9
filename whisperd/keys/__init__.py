"""whisperd-keys: push-to-talk dictation (evdev trigger, sounddevice recording, uinput typing).

Modules: ``trigger`` (the pure state machine), ``keyboard`` (evdev), ``audio``
(sounddevice), ``virtual`` (uinput), ``layout`` (XKB reverse map), ``typer``, ``service``
(the orchestrator), ``config`` (the ``[keys]`` section), ``main`` (the program).
"""
