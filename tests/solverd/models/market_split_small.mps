NAME          MSPLIT2
ROWS
 N  OBJ
 E  r0
 E  r1
COLUMNS
    MARKER0     'MARKER'                 'INTORG'
    x0        r0                  41
    x0        r1                   7
    x1        r0                  19
    x1        r1                  64
    x2        r0                  50
    x2        r1                  27
    x3        r0                  83
    x3        r1                   4
    x4        r0                   6
    x4        r1                  11
    x5        r0                   9
    x5        r1                  55
    x6        r0                  68
    x6        r1                  53
    x7        r0                  12
    x7        r1                   8
    x8        r0                  46
    x8        r1                  30
    x9        r0                  74
    x9        r1                  11
    MARKER1     'MARKER'                 'INTEND'
    sp0       OBJ                  1
    sp0       r0                   1
    sm0       OBJ                  1
    sm0       r0                  -1
    sp1       OBJ                  1
    sp1       r1                   1
    sm1       OBJ                  1
    sm1       r1                  -1
RHS
    RHS       r0                 204
    RHS       r1                 135
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
