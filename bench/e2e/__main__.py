from bench.e2e.run import main

raise SystemExit(main())
