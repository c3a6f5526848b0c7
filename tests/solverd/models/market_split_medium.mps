NAME          MSPLIT3
ROWS
 N  OBJ
 E  r0
 E  r1
 E  r2
COLUMNS
    MARKER0     'MARKER'                 'INTORG'
    x0        r0                  41
    x0        r1                  70
    x0        r2                  18
    x1        r0                  19
    x1        r1                  54
    x1        r2                  69
    x2        r0                  50
    x2        r1                   7
    x2        r2                  15
    x3        r0                  83
    x3        r1                  72
    x3        r2                  73
    x4        r0                   6
    x4        r1                  15
    x4        r2                  39
    x5        r0                   9
    x5        r1                  28
    x5        r2                  71
    x6        r0                  68
    x6        r1                  80
    x6        r2                  87
    x7        r0                  12
    x7        r1                  80
    x7        r2                  23
    x8        r0                  46
    x8        r1                  74
    x8        r2                  13
    x9        r0                  74
    x9        r1                   7
    x9        r2                  74
    x10       r0                   7
    x10       r1                  73
    x10       r2                  73
    x11       r0                  64
    x11       r1                  74
    x11       r2                  81
    x12       r0                  27
    x12       r1                  50
    x12       r2                  24
    x13       r0                   4
    x13       r1                   6
    x13       r2                  47
    x14       r0                  11
    x14       r1                  28
    x14       r2                  12
    x15       r0                  55
    x15       r1                   5
    x15       r2                  70
    x16       r0                  53
    x16       r1                  71
    x16       r2                  91
    x17       r0                   8
    x17       r1                  17
    x17       r2                   8
    x18       r0                  30
    x18       r1                  37
    x18       r2                  72
    x19       r0                  11
    x19       r1                  53
    x19       r2                   7
    MARKER1     'MARKER'                 'INTEND'
    sp0       OBJ                  1
    sp0       r0                   1
    sm0       OBJ                  1
    sm0       r0                  -1
    sp1       OBJ                  1
    sp1       r1                   1
    sm1       OBJ                  1
    sm1       r1                  -1
    sp2       OBJ                  1
    sp2       r2                   1
    sm2       OBJ                  1
    sm2       r2                  -1
RHS
    RHS       r0                 339
    RHS       r1                 450
    RHS       r2                 483
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
 LO BND       x10                  0
 UP BND       x10                  1
 LO BND       x11                  0
 UP BND       x11                  1
 LO BND       x12                  0
 UP BND       x12                  1
 LO BND       x13                  0
 UP BND       x13                  1
 LO BND       x14                  0
 UP BND       x14                  1
 LO BND       x15                  0
 UP BND       x15                  1
 LO BND       x16                  0
 UP BND       x16                  1
 LO BND       x17                  0
 UP BND       x17                  1
 LO BND       x18                  0
 UP BND       x18                  1
 LO BND       x19                  0
 UP BND       x19                  1
ENDATA
