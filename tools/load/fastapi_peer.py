"""The FastAPI peer of `go run ./tools/load --compare`.

FastAPI's own OAuth2 JWT recipe (docs: Security > OAuth2 with Password (and
hashing), Bearer with JWT tokens): OAuth2PasswordBearer, an HS256 token read
with python-jose, the current user looked up by the token's subject, then the
same SQLite read passflow and the bare gin peer do for GET /my_data.

Run by the load tool as
    python3 -m uvicorn fastapi_peer:app --workers N
with PEER_DB (the SQLite file) and PEER_SECRET (the HS256 key) set.
"""
import os
import sqlite3
import threading

from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.security import OAuth2PasswordBearer
from jose import JWTError, jwt

SECRET_KEY = os.environ["PEER_SECRET"]
ALGORITHM = "HS256"
DB = os.environ["PEER_DB"]

app = FastAPI()
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")
local = threading.local()


def db():
    # sqlite3 connections stay in their thread; FastAPI runs sync endpoints
    # in a thread pool.
    if not hasattr(local, "conn"):
        local.conn = sqlite3.connect(DB, check_same_thread=False)
        local.conn.execute("PRAGMA busy_timeout = 5000")
    return local.conn


def users():
    # The recipe's fake_users_db: the accounts, by username, in memory.
    rows = db().execute("SELECT username, id, disabled FROM users").fetchall()
    return {name: {"username": name, "id": uid, "disabled": bool(disabled)} for name, uid, disabled in rows}


fake_users_db = users()


async def get_current_user(token: str = Depends(oauth2_scheme)):
    credentials_exception = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": "Bearer"},
    )
    try:
        payload = jwt.decode(token, SECRET_KEY, algorithms=[ALGORITHM])
        username = payload.get("sub")
        if username is None:
            raise credentials_exception
    except JWTError:
        raise credentials_exception
    user = fake_users_db.get(username)
    if user is None:
        raise credentials_exception
    return user


async def get_current_active_user(current_user=Depends(get_current_user)):
    if current_user["disabled"]:
        raise HTTPException(status_code=400, detail="Inactive user")
    return current_user


@app.get("/my_data")
def read_my_data(current_user=Depends(get_current_active_user)):
    rows = db().execute(
        "SELECT key, value, updated_at FROM items WHERE user_id = ? ORDER BY key", (current_user["id"],)
    ).fetchall()
    return [{"key": k, "value": v} for k, v, _ in rows]
