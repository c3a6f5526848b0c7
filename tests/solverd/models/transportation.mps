NAME          TRANSP
ROWS
 N  OBJ
 L  sup0
 L  sup1
 L  sup2
 G  dem0
 G  dem1
 G  dem2
 G  dem3
COLUMNS
    s0_d0     OBJ                  8
    s0_d0     sup0                 1
    s0_d0     dem0                 1
    s0_d1     OBJ                  6
    s0_d1     sup0                 1
    s0_d1     dem1                 1
    s0_d2     OBJ                 10
    s0_d2     sup0                 1
    s0_d2     dem2                 1
    s0_d3     OBJ                  9
    s0_d3     sup0                 1
    s0_d3     dem3                 1
    s1_d0     OBJ                  9
    s1_d0     sup1                 1
    s1_d0     dem0                 1
    s1_d1     OBJ                 12
    s1_d1     sup1                 1
    s1_d1     dem1                 1
    s1_d2     OBJ                 13
    s1_d2     sup1                 1
    s1_d2     dem2                 1
    s1_d3     OBJ                  7
    s1_d3     sup1                 1
    s1_d3     dem3                 1
    s2_d0     OBJ                 14
    s2_d0     sup2                 1
    s2_d0     dem0                 1
    s2_d1     OBJ                  9
    s2_d1     sup2                 1
    s2_d1     dem1                 1
    s2_d2     OBJ                 16
    s2_d2     sup2                 1
    s2_d2     dem2                 1
    s2_d3     OBJ                  5
    s2_d3     sup2                 1
    s2_d3     dem3                 1
RHS
    RHS       sup0                50
    RHS       sup1                60
    RHS       sup2                50
    RHS       dem0                30
    RHS       dem1                40
    RHS       dem2                50
    RHS       dem3                40
BOUNDS
ENDATA
