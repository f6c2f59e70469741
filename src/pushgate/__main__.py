from pushgate.cli import main

raise SystemExit(main())
