NAME          INFEASIP
ROWS
 N  OBJ
 E  odd
COLUMNS
    MARKER0     'MARKER'                 'INTORG'
    x         OBJ                  1
    x         odd                  2
    y         OBJ                  1
    y         odd                  2
    MARKER1     'MARKER'                 'INTEND'
RHS
    RHS       odd                  3
BOUNDS
 LO BND       x                    0
 UP BND       x                    5
 LO BND       y                    0
 UP BND       y                    5
ENDATA
