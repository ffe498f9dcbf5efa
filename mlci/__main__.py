from mlci.commands import main

raise SystemExit(main())
