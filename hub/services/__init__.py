"""The workspace service layer: the one path the faces (API, CLI, UI) take to act on a
workspace, validated, authorised and audited in one place."""
