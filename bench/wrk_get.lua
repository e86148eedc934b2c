-- wrk script for the HTTP ceiling in bench/run.sh: GET /healthz, same summary line.
dofile("bench/wrk_report.lua")
