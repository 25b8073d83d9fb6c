# main.py: runs after boot.py on every start. The gateway logs any fatal error, commits the energy
# totals if it can and resets the board (see gateway.app.main).
from gateway.app import main

main()
