NAME          DIET
ROWS
 N  OBJ
 G  protein
 G  iron
COLUMNS
    a         OBJ                  2
    a         protein              1
    a         iron                 4
    b         OBJ                3.5
    b         protein              2
    b         iron                 1
    c         OBJ                  8
    c         protein              3
    c         iron                 2
RHS
    RHS       protein             11
    RHS       iron                 8
BOUNDS
 UP BND       a                   10
 UP BND       b                   10
 UP BND       c                   10
ENDATA
