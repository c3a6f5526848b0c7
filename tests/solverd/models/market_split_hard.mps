NAME          MSPLIT4
ROWS
 N  OBJ
 E  r0
 E  r1
 E  r2
 E  r3
COLUMNS
    MARKER0     'MARKER'                 'INTORG'
    x0        r0                  17
    x0        r1                   3
    x0        r2                  12
    x0        r3                  46
    x1        r0                  72
    x1        r1                   2
    x1        r2                  23
    x1        r3                  70
    x2        r0                  97
    x2        r1                   3
    x2        r2                  80
    x2        r3                  89
    x3        r0                   8
    x3        r1                  83
    x3        r2                  92
    x3        r3                  99
    x4        r0                  32
    x4        r1                  69
    x4        r2                  37
    x4        r3                  86
    x5        r0                  15
    x5        r1                   1
    x5        r2                  15
    x5        r3                  94
    x6        r0                  63
    x6        r1                  48
    x6        r2                  95
    x6        r3                  47
    x7        r0                  97
    x7        r1                  87
    x7        r2                  42
    x7        r3                  11
    x8        r0                  57
    x8        r1                  27
    x8        r2                  92
    x8        r3                  56
    x9        r0                  60
    x9        r1                  54
    x9        r2                  91
    x9        r3                  84
    x10       r0                  83
    x10       r1                  92
    x10       r2                  64
    x10       r3                  65
    x11       r0                  48
    x11       r1                   3
    x11       r2                  54
    x11       r3                  13
    x12       r0                  26
    x12       r1                  67
    x12       r2                  64
    x12       r3                  99
    x13       r0                  12
    x13       r1                  28
    x13       r2                  85
    x13       r3                  20
    x14       r0                  62
    x14       r1                  97
    x14       r2                  24
    x14       r3                  66
    x15       r0                   3
    x15       r1                  56
    x15       r2                  38
    x15       r3                  50
    x16       r0                  49
    x16       r1                  63
    x16       r2                  36
    x16       r3                  47
    x17       r0                  55
    x17       r1                  70
    x17       r2                  75
    x17       r3                  62
    x18       r0                  77
    x18       r1                  29
    x18       r2                  63
    x18       r3                  93
    x19       r0                  97
    x19       r1                  44
    x19       r2                  64
    x19       r3                   3
    x20       r0                  98
    x20       r1                  29
    x20       r2                  50
    x20       r3                  60
    x21       r1                  86
    x21       r2                  75
    x21       r3                   5
    x22       r0                  89
    x22       r1                  28
    x22       r2                   4
    x22       r3                  39
    x23       r0                  57
    x23       r1                  97
    x23       r2                  61
    x23       r3                  90
    x24       r0                  34
    x24       r1                  58
    x24       r2                  31
    x24       r3                  78
    x25       r0                  92
    x25       r1                  37
    x25       r2                  95
    x25       r3                  75
    x26       r0                  29
    x26       r1                   2
    x26       r2                  51
    x26       r3                  74
    x27       r0                  75
    x27       r1                  53
    x27       r2                  53
    x27       r3                  50
    x28       r0                  13
    x28       r1                  71
    x28       r2                  85
    x28       r3                  82
    x29       r0                  40
    x29       r1                  82
    x29       r2                  22
    x29       r3                  21
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
    sp3       OBJ                  1
    sp3       r3                   1
    sm3       OBJ                  1
    sm3       r3                  -1
RHS
    RHS       r0                 778
    RHS       r1                 734
    RHS       r2                 836
    RHS       r3                 887
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
 LO BND       x20                  0
 UP BND       x20                  1
 LO BND       x21                  0
 UP BND       x21                  1
 LO BND       x22                  0
 UP BND       x22                  1
 LO BND       x23                  0
 UP BND       x23                  1
 LO BND       x24                  0
 UP BND       x24                  1
 LO BND       x25                  0
 UP BND       x25                  1
 LO BND       x26                  0
 UP BND       x26                  1
 LO BND       x27                  0
 UP BND       x27                  1
 LO BND       x28                  0
 UP BND       x28                  1
 LO BND       x29                  0
 UP BND       x29                  1
ENDATA
