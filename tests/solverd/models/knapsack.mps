NAME          KNAPSACK
ROWS
 N  OBJ
 L  cap
COLUMNS
    MARKER0     'MARKER'                 'INTORG'
    x0        OBJ                -92
    x0        cap                 23
    x1        OBJ                -57
    x1        cap                 31
    x2        OBJ                -49
    x2        cap                 29
    x3        OBJ                -68
    x3        cap                 44
    x4        OBJ                -60
    x4        cap                 53
    x5        OBJ                -43
    x5        cap                 38
    x6        OBJ                -67
    x6        cap                 63
    x7        OBJ                -84
    x7        cap                 85
    x8        OBJ                -87
    x8        cap                 89
    x9        OBJ                -72
    x9        cap                 82
    MARKER1     'MARKER'                 'INTEND'
RHS
    RHS       cap                165
BOUNDS
 LO BND       x0                   0
 UP BND       x0                   1
 LO BND       x1                   0
 UP BND       x1                   1
 LO BND       x2                   0
 UP BND       x2                   1
 LO BND       x3                   0
 UP BND       x3                   1
 LO BND       x4                   0
 UP BND       x4                   1
 LO BND       x5                   0
 UP BND       x5                   1
 LO BND       x6                   0
 UP BND       x6                   1
 LO BND       x7                   0
 UP BND       x7                   1
 LO BND       x8                   0
 UP BND       x8                   1
 LO BND       x9                   0
 UP BND       x9                   1
ENDATA
