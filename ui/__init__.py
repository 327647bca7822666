"""The Streamlit console."""
