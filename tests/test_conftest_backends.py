from sqlalchemy import create_engine, text


def test_db_url_fixture_gives_an_empty_reachable_database(db_url):
    url = db_url.replace("postgresql://", "postgresql+psycopg://")
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("select 1")).scalar() == 1
    engine.dispose()
