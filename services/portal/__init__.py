"""The citizens' portal: pilots, ideas, votes, questionnaires and the lab's answers, in French and English."""
