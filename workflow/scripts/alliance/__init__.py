"""alliance: cleaning, scoring, mixed models and reporting for alliance–outcome psychotherapy research."""
