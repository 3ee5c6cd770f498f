"""The departments, shared by the URL configuration (one set of routes per
department), builddb.py and loadplan.py: plain Python, no Django import."""

DEPARTMENTS = [
    "anthropology", "architecture", "astronomy", "biochemistry", "biology",
    "chemistry", "classics", "computing", "dance", "economics",
    "education", "engineering", "english", "film", "finance",
    "geography", "geology", "german", "history", "journalism",
    "law", "linguistics", "literature", "management", "marketing",
    "mathematics", "medicine", "music", "nursing", "philosophy",
    "physics", "politics", "psychology", "religion", "sociology",
    "spanish", "statistics", "theatre", "urbanism", "zoology",
]
