from afr.cli import main

raise SystemExit(main())
