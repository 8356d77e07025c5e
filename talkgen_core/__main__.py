from talkgen_core.cli import main

raise SystemExit(main())
