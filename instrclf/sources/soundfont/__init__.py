"""The ``soundfont`` source: a TinySOL-shaped set of notes rendered offline from sampled libraries.

Every TinySOL note is played on the matching General MIDI program of each library named in
``data.soundfont.libraries``; each library is one more instance of every note (``Instance
ID`` = its position, ``Library`` = its name), with its own seeded variation per note.

- :mod:`.libraries`: the library registry (name -> file and Debian package) and its checks.
- :mod:`.plan`: the notes, their folds and evenly spread subsets.
- :mod:`.effects`: each note's :class:`~.effects.Variation` and the effects that apply it.
- :mod:`.render`: the synthesiser workers and :func:`.render.render`.

File names follow TinySOL: ``<abbr>-ord-<pitch>-<dyn>-<string>-<tag>.wav`` under
``<Family>/<Instrument>/ordinario/``, where ``<string>`` is ``1c``..``4c`` for bowed strings
(1 = highest) and ``N`` otherwise, and ``<tag>`` is ``N`` for instance 0 and ``I<k>`` for
instance ``k``.
"""
