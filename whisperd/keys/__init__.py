"""whisperd-keys: push-to-talk dictation (evdev trigger, sounddevice recording, uinput typing).

Modules: ``trigger`` (the pure state machine), ``keyboard`` (evdev), ``audio``
(sounddevice), ``virtual`` (uinput), ``layout`` (XKB reverse map), ``typer``, ``livetype``
(joining live pieces and when to type them: pure), ``typist`` (the typing thread),
``session`` (one dictation), ``service`` (the orchestrator), ``config`` (the ``[keys]``
section), ``main`` (the program).
"""
