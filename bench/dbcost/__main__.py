from bench.dbcost.run import main

main()
